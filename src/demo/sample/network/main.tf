# Gantry's demo repository: an offline configuration (outputs and variables only).
variable "environment" {
  type = string
}

output "cidr_blocks" {
  value = {
    public  = "10.0.0.0/20"
    private = "10.0.16.0/20"
    env     = var.environment
  }
}
