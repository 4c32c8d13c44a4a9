//! What a tenant may see and use: list commands by id and by name as a foreign
//! caller, limits under concurrency, parameters that must work or be refused,
//! numbers in range, jobs named by their caller.

mod foreign;
mod fuzz;
mod job_id;
mod limits;
mod params;
mod tenant;
