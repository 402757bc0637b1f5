//! `rename` of a container: the record under the names lock, then its
//! leases, so the resolver answers the new name at once (docker renames
//! the DNS record without a restart).

use anyhow::{Context, Result};

use super::Net;
use crate::engine::container::ContainerStore;
use crate::engine::paths::Paths;

pub fn rename_container(paths: &Paths, input: &str, new: &str) -> Result<()> {
    let store = ContainerStore::new(paths.clone());
    store.rename(input, new)?;
    let id = store.resolve(new)?;
    let net = Net::new(paths)?;
    netns::rename_leases(&net.env, &id, new).with_context(|| {
        format!("renamed container {new} but could not update its network leases")
    })?;
    Ok(())
}
