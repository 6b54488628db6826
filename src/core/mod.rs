//! Pure decisions with no I/O: the run state machine, queue policy, triggers, commands.
//! Filled in by the runs and pull request work.
