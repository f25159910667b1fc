//! The checkpoint storage service, one for both drivers: a distributed file system reduced to
//! one node whose files have a durable prefix ([`Files`]). A write creates the file at its
//! final path, appends and syncs, so a crash before the sync leaves it torn there; a failed
//! write removes the file, so it never reads back. The madsim driver serves it on the
//! [`SimDisk`] (latency, faults, crashes) and lets a crash trigger fire between the steps of a
//! write; the in-process driver serves it on plain files at once.

use crate::disk::{DiskError, Files, SimDisk};
use crate::faults::WriteMoment;
use crate::trace::StorageEvent;
use snapsim_core::ids::Tick;
use snapsim_core::storage::{StorageError, StorageOp, StoragePath, StorageReply, StorageRequest};
use std::cell::RefCell;
use std::sync::Arc;

/// The disk under the service.
pub(crate) trait Disk {
    async fn create(&self, path: &str);
    async fn append(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError>;
    async fn sync(&self, path: &str) -> Result<(), DiskError>;
    async fn read(&self, path: &str) -> Result<Vec<u8>, DiskError>;
    /// Whether the file existed.
    async fn delete(&self, path: &str) -> bool;
    /// The paths that start with `prefix` (as text), in order.
    async fn list(&self, prefix: &str) -> Vec<String>;
}

/// What the service tells the driver around it.
pub(crate) trait StorageWorld {
    /// The storage did something the trace should show.
    fn trace(&self, event: StorageEvent);
    /// A write reached `moment`: a crash the fault schedule ties to it happens here.
    async fn reached(&self, path: &str, moment: WriteMoment);
}

/// A world that keeps the service's events for its caller to take, and ties no crash to a
/// write: the in-process driver's.
#[derive(Default)]
pub(crate) struct Collected(pub(crate) RefCell<Vec<StorageEvent>>);

impl StorageWorld for Collected {
    fn trace(&self, event: StorageEvent) {
        self.0.borrow_mut().push(event);
    }

    async fn reached(&self, _path: &str, _moment: WriteMoment) {}
}

impl Disk for Arc<SimDisk> {
    async fn create(&self, path: &str) {
        SimDisk::create(self, path).await
    }
    async fn append(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        SimDisk::append(self, path, bytes).await
    }
    async fn sync(&self, path: &str) -> Result<(), DiskError> {
        SimDisk::sync(self, path).await
    }
    async fn read(&self, path: &str) -> Result<Vec<u8>, DiskError> {
        SimDisk::read(self, path).await
    }
    async fn delete(&self, path: &str) -> bool {
        SimDisk::delete(self, path).await
    }
    async fn list(&self, prefix: &str) -> Vec<String> {
        SimDisk::list(self, prefix).await
    }
}

/// Files without latency or faults: every operation completes when called.
impl Disk for RefCell<Files> {
    async fn create(&self, path: &str) {
        self.borrow_mut().create(path)
    }
    async fn append(&self, path: &str, bytes: &[u8]) -> Result<(), DiskError> {
        self.borrow_mut().append(path, bytes)
    }
    async fn sync(&self, path: &str) -> Result<(), DiskError> {
        self.borrow_mut().sync(path)
    }
    async fn read(&self, path: &str) -> Result<Vec<u8>, DiskError> {
        self.borrow().read(path)
    }
    async fn delete(&self, path: &str) -> bool {
        self.borrow_mut().delete(path)
    }
    async fn list(&self, prefix: &str) -> Vec<String> {
        self.borrow().list(prefix)
    }
}

pub(crate) struct StorageService<D, W> {
    pub(crate) disk: D,
    pub(crate) world: W,
}

impl<D: Disk, W: StorageWorld> StorageService<D, W> {
    /// Executes `request` arriving at `now`, unless its deadline passed: then its sender has
    /// failed it already, and it is refused unexecuted (traced as a failure).
    pub(crate) async fn serve(
        &self,
        request: StorageRequest,
        now: Tick,
    ) -> Result<StorageReply, StorageError> {
        match request.deadline.filter(|&deadline| now > deadline) {
            Some(deadline) => {
                let operation = request.op.to_string();
                let error = StorageError::Expired {
                    operation: operation.clone(),
                    deadline,
                };
                let error_text = error.to_string();
                self.world.trace(StorageEvent::Failed {
                    operation,
                    error: error_text,
                });
                Err(error)
            }
            None => self.execute(request.op).await,
        }
    }

    pub(crate) async fn execute(&self, op: StorageOp) -> Result<StorageReply, StorageError> {
        let operation = op.to_string();
        let result = match op {
            StorageOp::Write { path, bytes } => self.write(&path, &bytes).await,
            StorageOp::Read { path } => match self.disk.read(path.as_str()).await {
                Ok(bytes) => Ok(StorageReply::Data(bytes)),
                Err(error) => Err(storage_error(&path, error)),
            },
            StorageOp::DeleteAll { prefix } => {
                let doomed = self.below(&prefix).await;
                for path in &doomed {
                    if self.disk.delete(path.as_str()).await {
                        let path = path.to_string();
                        self.world.trace(StorageEvent::Deleted { path });
                    }
                }
                Ok(StorageReply::Deleted(doomed.len() as u64))
            }
            StorageOp::List { prefix } => Ok(StorageReply::Listed(self.below(&prefix).await)),
        };
        if let Err(error) = &result {
            self.world.trace(StorageEvent::Failed {
                operation,
                error: error.to_string(),
            });
        }
        result
    }

    /// The files at or below `prefix`, as storage paths, in order (`chk-10` is not below
    /// `chk-1`).
    async fn below(&self, prefix: &StoragePath) -> Vec<StoragePath> {
        self.disk
            .list(prefix.as_str())
            .await
            .into_iter()
            .map(|path| StoragePath::new(path).expect("files are written at valid paths"))
            .filter(|path| path.starts_with(prefix))
            .collect()
    }

    /// Create, append, sync: the file is at its final path from the start, so a crash before
    /// the sync leaves it torn there. A failed write removes the file, so it never reads back.
    async fn write(&self, path: &StoragePath, bytes: &[u8]) -> Result<StorageReply, StorageError> {
        let name = path.as_str();
        self.disk.create(name).await;
        if let Err(error) = self.disk.append(name, bytes).await {
            self.disk.delete(name).await;
            return Err(storage_error(path, error));
        }
        self.world.trace(StorageEvent::Written {
            path: name.to_string(),
            bytes: bytes.len() as u64,
        });
        self.world.reached(name, WriteMoment::BeforeSync).await;
        if let Err(error) = self.disk.sync(name).await {
            self.disk.delete(name).await;
            return Err(storage_error(path, error));
        }
        self.world.trace(StorageEvent::Synced {
            path: name.to_string(),
        });
        self.world.reached(name, WriteMoment::AfterSync).await;
        Ok(StorageReply::Written)
    }
}

fn storage_error(path: &StoragePath, error: DiskError) -> StorageError {
    match error {
        DiskError::NotFound { .. } => StorageError::NotFound { path: path.clone() },
        DiskError::Io { .. } => StorageError::Io {
            path: path.clone(),
            detail: error.to_string(),
        },
        DiskError::NoSpace { .. } => StorageError::NoSpace { path: path.clone() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use snapsim_core::ids::CheckpointId;

    fn execute(service: &StorageService<RefCell<Files>, Collected>, op: StorageOp) -> StorageReply {
        let done = service
            .execute(op)
            .now_or_never()
            .expect("plain files answer at once");
        done.expect("succeeds")
    }

    #[test]
    fn delete_all_takes_the_prefix_not_its_siblings_and_a_write_is_synced() {
        let service = StorageService {
            disk: RefCell::<Files>::default(),
            world: Collected::default(),
        };
        for path in ["job/chk-1/a", "job/chk-1/b", "job/chk-10/a"] {
            let path = StoragePath::new(path).expect("valid");
            execute(
                &service,
                StorageOp::Write {
                    path,
                    bytes: vec![1],
                },
            );
        }
        let prefix = StoragePath::checkpoint_dir("job", CheckpointId(1));
        let deleted = execute(&service, StorageOp::DeleteAll { prefix });
        assert_eq!(deleted, StorageReply::Deleted(2));
        let left = service.disk.borrow().durable();
        assert_eq!(left, [("job/chk-10/a".to_string(), vec![1])]);
        let events = service.world.0.borrow();
        assert!(matches!(
            &events[..2],
            [
                StorageEvent::Written { bytes: 1, .. },
                StorageEvent::Synced { .. }
            ]
        ));
    }
}
