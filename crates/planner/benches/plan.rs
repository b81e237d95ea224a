//! Placeholder so the workspace manifest parses while the planner bench is being written.
fn main() {}
