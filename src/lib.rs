//! drover: a GitOps reconciler for Kubernetes DaemonSets.
#![forbid(unsafe_code)]
