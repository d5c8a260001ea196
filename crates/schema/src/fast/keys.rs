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
    pub(super) fn of(key: &str) -> Option<EventKey> {
        use EventKey::*;
        Some(match key {
            "kind" => Text(self::Text::Kind),
            "apiVersion" => Text(self::Text::ApiVersion),
            "level" => Text(self::Text::Level),
            "auditID" => Text(self::Text::AuditId),
            "stage" => Text(self::Text::Stage),
            "requestURI" => Text(self::Text::RequestUri),
            "verb" => Text(self::Text::Verb),
            "userAgent" => Text(self::Text::UserAgent),
            "user" => User,
            "impersonatedUser" => ImpersonatedUser,
            "sourceIPs" => SourceIps,
            "objectRef" => ObjectRef,
            "responseStatus" => ResponseStatus,
            "requestObject" => RequestObject,
            "responseObject" => ResponseObject,
            "requestReceivedTimestamp" => RequestReceivedTimestamp,
            "stageTimestamp" => StageTimestamp,
            "annotations" => Annotations,
            _ => return None,
        })
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
    pub(super) fn of(key: &str) -> Option<UserKey> {
        Some(match key {
            "username" => UserKey::Username,
            "uid" => UserKey::Uid,
            "groups" => UserKey::Groups,
            "extra" => UserKey::Extra,
            _ => return None,
        })
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
    pub(super) fn of(key: &str) -> Option<StatusKey> {
        Some(match key {
            "metadata" => StatusKey::Metadata,
            "status" => StatusKey::Status,
            "message" => StatusKey::Message,
            "reason" => StatusKey::Reason,
            "details" => StatusKey::Details,
            "code" => StatusKey::Code,
            _ => return None,
        })
    }

    pub(super) fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// The slot of an `objectRef` key (every value a string), and its bit.
pub(super) fn object_ref_slot<'o, 'a>(
    o: &'o mut ObjectRef<'a>,
    key: &str,
) -> Option<(&'o mut Option<Cow<'a, str>>, u32)> {
    Some(match key {
        "resource" => (&mut o.resource, 1),
        "namespace" => (&mut o.namespace, 2),
        "name" => (&mut o.name, 4),
        "uid" => (&mut o.uid, 8),
        "apiGroup" => (&mut o.api_group, 16),
        "apiVersion" => (&mut o.api_version, 32),
        "resourceVersion" => (&mut o.resource_version, 64),
        "subresource" => (&mut o.subresource, 128),
        _ => return None,
    })
}
