//! Local OCI images for tests and the dev cluster, built from files on this machine
//! (busybox-static, ferrolet's own static programs), because no image can be pulled from the
//! internet here.
//!
//! [`layout`] writes a single-layer image as an OCI image-layout archive that
//! `ctr images import`, `skopeo copy oci-archive:` and ferrolet's own runtime all read;
//! [`catalog`] says which images exist, under which names, and what they contain.

pub mod catalog;
pub mod layout;

pub use catalog::{BUSYBOX, PAUSE, REGISTRY_BUSYBOX, REGISTRY_ONLY, TEST_SERVER};
