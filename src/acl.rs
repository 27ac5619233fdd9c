//! ACL fixup and checks, auth schemes (world, auth, digest, ip, super).
//! Sans-IO.

use crate::proto::{Acl, ErrorCode};

/// What the data tree needs to know about the caller of a write: whether an
/// ACL grants a permission, and how to expand/validate a requested ACL.
/// Implemented by `acl::Authz` (the caller's auth ids plus the super digest).
pub trait AuthContext {
    /// True if `acl` grants `perm` to the caller (super always passes; an
    /// empty ACL allows everything).
    fn allowed(&self, acl: &[Acl], perm: i32) -> bool;
    /// ACL fixup for create / setACL: drops duplicates, expands `auth`,
    /// validates schemes and ids. Err(InvalidAcl) as ZooKeeper returns it.
    fn fixup_acl(&self, acl: &[Acl]) -> Result<Vec<Acl>, ErrorCode>;
}
