//! The running router: forged source addresses, a corrupt state file, a failing
//! dnsmasq, drift, and what GetState and health report.
