//! Who a peer is, and what it may read: the rules of `ovis_access_check`.

/// The read bits of a permission mask (`LDMS_ACCESS_READ`, 0444).
pub const ACCESS_READ: u32 = 0o444;

/// A peer's identity as the auth plugin established it. With auth `none`, ldmsd takes
/// every peer for root (uid 0, gid 0), which may read every set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (ldmsd asks the system for the uid's group list).
    pub groups: Vec<u32>,
}

impl Credentials {
    /// Root, as every peer is under auth `none`.
    pub fn root() -> Credentials {
        Credentials::default()
    }

    /// A non-root identity.
    pub fn user(uid: u32, gid: u32, groups: Vec<u32>) -> Credentials {
        Credentials { uid, gid, groups }
    }

    /// Whether this identity may access (`acc`: e.g. [`ACCESS_READ`]) an object owned by
    /// `uid`:`gid` with permission bits `perm`: root always; otherwise the "other" bits,
    /// then the owner bits for the owner, then the group bits for a member of the group.
    pub fn may(&self, acc: u32, uid: u32, gid: u32, perm: u32) -> bool {
        let granted = acc & perm;
        self.uid == 0
            || granted & 0o007 != 0
            || (granted & 0o700 != 0 && self.uid == uid)
            || (granted & 0o070 != 0 && (self.gid == gid || self.groups.contains(&gid)))
    }

    /// Whether this identity may read a set owned by `uid`:`gid` with `perm`.
    pub fn may_read(&self, uid: u32, gid: u32, perm: u32) -> bool {
        self.may(ACCESS_READ, uid, gid, perm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ovis_rules() {
        let root = Credentials::root();
        assert!(root.may_read(5, 5, 0));
        let u = Credentials::user(1000, 100, vec![200]);
        assert!(u.may_read(0, 0, 0o444));
        assert!(!u.may_read(0, 0, 0o440));
        assert!(u.may_read(1000, 0, 0o400));
        assert!(!u.may_read(1001, 0, 0o400));
        assert!(u.may_read(0, 100, 0o040));
        assert!(u.may_read(0, 200, 0o040));
        assert!(!u.may_read(0, 300, 0o040));
        assert!(!u.may_read(1000, 100, 0o222));
    }
}
