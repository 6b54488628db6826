#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gantry::fuzzing::command(data));
