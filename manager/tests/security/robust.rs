//! Robustness: the default driver, a manager killed mid-job, a database outage,
//! failed pushes, query counts.
