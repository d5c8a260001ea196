//! The keys the common case knows at each level of an event, shared by both tiers (so that they
//! accept the same keys), and the bit each marks in a tier's set of keys seen (a key given twice
//! leaves the common case).

use std::borrow::Cow;

use crate::event::{Event, ObjectRef};

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

impl EventKey {
    /// Every key, in the order the API server writes them (the byte-level tier tries them from
    /// the one after the key it read last).
    pub(super) const TABLE: &'static [(&'static str, EventKey)] = &[
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

    pub(super) fn of(key: &str) -> Option<EventKey> {
        lookup(Self::TABLE, key)
    }

    pub(super) fn bit(self) -> u32 {
        match self {
            EventKey::Text(t) => 1 << t as u32,
            EventKey::User => 1 << 8,
            EventKey::ImpersonatedUser => 1 << 9,
            EventKey::SourceIps => 1 << 10,
            EventKey::ObjectRef => 1 << 11,
            EventKey::ResponseStatus => 1 << 12,
            EventKey::RequestObject => 1 << 13,
            EventKey::ResponseObject => 1 << 14,
            EventKey::RequestReceivedTimestamp => 1 << 15,
            EventKey::StageTimestamp => 1 << 16,
            EventKey::Annotations => 1 << 17,
        }
    }
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

impl UserKey {
    /// Every key, in the order the API server writes them.
    pub(super) const TABLE: &'static [(&'static str, UserKey)] = &[
        ("username", UserKey::Username),
        ("uid", UserKey::Uid),
        ("groups", UserKey::Groups),
        ("extra", UserKey::Extra),
    ];

    pub(super) fn of(key: &str) -> Option<UserKey> {
        lookup(Self::TABLE, key)
    }

    pub(super) fn bit(self) -> u32 {
        1 << self as u32
    }
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

impl StatusKey {
    /// Every key, in the order the API server writes them.
    pub(super) const TABLE: &'static [(&'static str, StatusKey)] = &[
        ("metadata", StatusKey::Metadata),
        ("status", StatusKey::Status),
        ("message", StatusKey::Message),
        ("reason", StatusKey::Reason),
        ("details", StatusKey::Details),
        ("code", StatusKey::Code),
    ];

    pub(super) fn of(key: &str) -> Option<StatusKey> {
        lookup(Self::TABLE, key)
    }

    pub(super) fn bit(self) -> u32 {
        1 << self as u32
    }
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

impl ObjectRefKey {
    /// Every key, in the order the API server writes them.
    pub(super) const TABLE: &'static [(&'static str, ObjectRefKey)] = &[
        ("resource", ObjectRefKey::Resource),
        ("namespace", ObjectRefKey::Namespace),
        ("name", ObjectRefKey::Name),
        ("uid", ObjectRefKey::Uid),
        ("apiGroup", ObjectRefKey::ApiGroup),
        ("apiVersion", ObjectRefKey::ApiVersion),
        ("resourceVersion", ObjectRefKey::ResourceVersion),
        ("subresource", ObjectRefKey::Subresource),
    ];

    pub(super) fn of(key: &str) -> Option<ObjectRefKey> {
        lookup(Self::TABLE, key)
    }

    pub(super) fn bit(self) -> u32 {
        1 << self as u32
    }

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

/// The key named `key` in `table`.
fn lookup<K: Copy>(table: &[(&str, K)], key: &str) -> Option<K> {
    table.iter().find(|(name, _)| *name == key).map(|&(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each table names each of its keys once, and gives each its own bit.
    #[test]
    fn tables_name_each_key_once() {
        fn check<K: Copy>(table: &[(&str, K)], bit: fn(K) -> u32) {
            let mut bits = 0;
            for (i, &(name, k)) in table.iter().enumerate() {
                assert!(table[..i].iter().all(|(n, _)| *n != name), "{name} twice");
                assert!(first(&mut bits, bit(k)), "{name}: bit given twice");
            }
        }
        check(EventKey::TABLE, EventKey::bit);
        check(UserKey::TABLE, UserKey::bit);
        check(StatusKey::TABLE, StatusKey::bit);
        check(ObjectRefKey::TABLE, ObjectRefKey::bit);
        assert_eq!((EventKey::TABLE.len(), ObjectRefKey::TABLE.len()), (18, 8));
    }
}
