# Gantry's demo repository: an offline configuration (outputs and variables only).
variable "environment" {
  type = string
}

locals {
  service = "checkout"
}

output "endpoint" {
  value = "https://${local.service}.${var.environment}.example.com"
}
