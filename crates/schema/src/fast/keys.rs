//! The keys the common case knows at each level of an event, shared by both tiers (so that they
//! accept the same keys), and the bit each marks in a tier's set of keys seen (a key given twice
//! leaves the common case).

use std::borrow::Cow;

use crate::event::{Event, ObjectRef};

/// The keys of one level of an event.
pub(super) trait Known: Copy + 'static {
    /// Every key, in the order the API server writes them (the byte-level tier tries them from
    /// the one after the key it read last). A key's bit in a set of keys seen is `1 <<` its place
    /// here.
    const TABLE: &'static [(&'static str, Self)];
}

/// The key named `key` at level `K`, and its bit.
pub(super) fn of<K: Known>(key: &str) -> Option<(K, u32)> {
    K::TABLE.iter().position(|(name, _)| *name == key).map(|i| (K::TABLE[i].1, 1 << i))
}

/// Marks `bit` seen; false when it was seen already.
pub(super) fn first(seen: &mut u32, bit: u32) -> bool {
    let new = *seen & bit == 0;
    *seen |= bit;
    new
}

/// A top-level key of an event.
#[derive(Clone, Copy)]
pub(super) enum EventKey {
    /// A plain string, read into its slot ([`Text::slot`]).
    Text(Text),
    User,
    ImpersonatedUser,
    SourceIps,
    ObjectRef,
    ResponseStatus,
    RequestObject,
    ResponseObject,
    RequestReceivedTimestamp,
    StageTimestamp,
    Annotations,
}

/// The top-level keys whose value is a plain string.
#[derive(Clone, Copy)]
pub(super) enum Text {
    Kind,
    ApiVersion,
    Level,
    AuditId,
    Stage,
    RequestUri,
    Verb,
    UserAgent,
}

impl Known for EventKey {
    const TABLE: &'static [(&'static str, EventKey)] = &[
        ("kind", EventKey::Text(Text::Kind)),
        ("apiVersion", EventKey::Text(Text::ApiVersion)),
        ("level", EventKey::Text(Text::Level)),
        ("auditID", EventKey::Text(Text::AuditId)),
        ("stage", EventKey::Text(Text::Stage)),
        ("requestURI", EventKey::Text(Text::RequestUri)),
        ("verb", EventKey::Text(Text::Verb)),
        ("user", EventKey::User),
        ("impersonatedUser", EventKey::ImpersonatedUser),
        ("sourceIPs", EventKey::SourceIps),
        ("userAgent", EventKey::Text(Text::UserAgent)),
        ("objectRef", EventKey::ObjectRef),
        ("responseStatus", EventKey::ResponseStatus),
        ("requestObject", EventKey::RequestObject),
        ("responseObject", EventKey::ResponseObject),
        ("requestReceivedTimestamp", EventKey::RequestReceivedTimestamp),
        ("stageTimestamp", EventKey::StageTimestamp),
        ("annotations", EventKey::Annotations),
    ];
}

impl Text {
    /// Where the value goes.
    pub(super) fn slot<'e, 'a>(self, e: &'e mut Event<'a>) -> &'e mut Option<Cow<'a, str>> {
        match self {
            Text::Kind => &mut e.kind,
            Text::ApiVersion => &mut e.api_version,
            Text::Level => &mut e.level,
            Text::AuditId => &mut e.audit_id,
            Text::Stage => &mut e.stage,
            Text::RequestUri => &mut e.request_uri,
            Text::Verb => &mut e.verb,
            Text::UserAgent => &mut e.user_agent,
        }
    }
}

/// A key of `user` and `impersonatedUser`.
#[derive(Clone, Copy)]
pub(super) enum UserKey {
    Username,
    Uid,
    Groups,
    Extra,
}

impl Known for UserKey {
    const TABLE: &'static [(&'static str, UserKey)] = &[
        ("username", UserKey::Username),
        ("uid", UserKey::Uid),
        ("groups", UserKey::Groups),
        ("extra", UserKey::Extra),
    ];
}

/// A key of `responseStatus`.
#[derive(Clone, Copy)]
pub(super) enum StatusKey {
    Metadata,
    Status,
    Message,
    Reason,
    Details,
    Code,
}

impl Known for StatusKey {
    const TABLE: &'static [(&'static str, StatusKey)] = &[
        ("metadata", StatusKey::Metadata),
        ("status", StatusKey::Status),
        ("message", StatusKey::Message),
        ("reason", StatusKey::Reason),
        ("details", StatusKey::Details),
        ("code", StatusKey::Code),
    ];
}

/// A key of `objectRef` (every value a string).
#[derive(Clone, Copy)]
pub(super) enum ObjectRefKey {
    Resource,
    Namespace,
    Name,
    Uid,
    ApiGroup,
    ApiVersion,
    ResourceVersion,
    Subresource,
}

impl Known for ObjectRefKey {
    const TABLE: &'static [(&'static str, ObjectRefKey)] = &[
        ("resource", ObjectRefKey::Resource),
        ("namespace", ObjectRefKey::Namespace),
        ("name", ObjectRefKey::Name),
        ("uid", ObjectRefKey::Uid),
        ("apiGroup", ObjectRefKey::ApiGroup),
        ("apiVersion", ObjectRefKey::ApiVersion),
        ("resourceVersion", ObjectRefKey::ResourceVersion),
        ("subresource", ObjectRefKey::Subresource),
    ];
}

impl ObjectRefKey {
    /// Where the value goes.
    pub(super) fn slot<'o, 'a>(self, o: &'o mut ObjectRef<'a>) -> &'o mut Option<Cow<'a, str>> {
        match self {
            ObjectRefKey::Resource => &mut o.resource,
            ObjectRefKey::Namespace => &mut o.namespace,
            ObjectRefKey::Name => &mut o.name,
            ObjectRefKey::Uid => &mut o.uid,
            ObjectRefKey::ApiGroup => &mut o.api_group,
            ObjectRefKey::ApiVersion => &mut o.api_version,
            ObjectRefKey::ResourceVersion => &mut o.resource_version,
            ObjectRefKey::Subresource => &mut o.subresource,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each table names each of its keys once, and each name finds its key with a bit of its
    /// own (a set of keys seen fits in a `u32`).
    #[test]
    fn tables_name_each_key_once() {
        fn check<K: Known>() {
            let mut bits = 0;
            assert!(K::TABLE.len() <= 32);
            for (i, &(name, _)) in K::TABLE.iter().enumerate() {
                assert!(K::TABLE[..i].iter().all(|(n, _)| *n != name), "{name} twice");
                let (_, bit) = of::<K>(name).expect("a name of the table");
                assert!(first(&mut bits, bit), "{name}: bit given twice");
            }
            assert!(of::<K>("no such key").is_none());
        }
        check::<EventKey>();
        check::<UserKey>();
        check::<StatusKey>();
        check::<ObjectRefKey>();
        assert_eq!((EventKey::TABLE.len(), ObjectRefKey::TABLE.len()), (18, 8));
    }
}
