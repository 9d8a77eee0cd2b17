//! `stackspin install`: the steps against a cluster's API.
