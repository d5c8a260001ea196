//! Built-in named queries (`@name`). Each is a plain search; rules and user-defined names (from the
//! rules file, PRODUCT.md §6) may add more through [`super::Options::macros`].

/// `(name, query, what it finds)`.
pub const BUILTIN: &[(&str, &str, &str)] = &[
    ("prod-deletes", "verb:(delete OR deletecollection) ns:prod*", "deletions in namespaces starting with prod"),
    ("secret-reads", "resource:secrets verb:(get OR list OR watch)", "reads of Secrets"),
    ("exec", "subresource:(exec OR attach OR portforward)", "exec, attach and port-forward into pods"),
    ("unauthorized", "code:401", "failed authentication"),
    ("forbidden", "code:403 OR decision:forbid", "requests the authorizer refused"),
    ("anonymous-allowed", "user_kind:anonymous decision:allow", "anonymous requests that were allowed"),
    (
        "privileged-pods",
        "verb:(create OR update OR patch) (privileged:true OR host_network:true OR host_pid:true OR host_ipc:true OR host_path:*)",
        "pod specs asking for privileges or host namespaces",
    ),
    (
        "cluster-admin-bindings",
        "verb:(create OR update OR patch) resource:(clusterrolebindings OR rolebindings) request.roleRef.name:cluster-admin",
        "bindings to cluster-admin",
    ),
    ("impersonation", "as:*", "requests made while impersonating someone"),
    ("token-requests", "resource:serviceaccounts subresource:token", "service-account token requests"),
    ("events-deleted", "resource:events verb:(delete OR deletecollection)", "deletion of Events (covering tracks)"),
    ("node-proxy", "resource:nodes subresource:proxy", "requests through the nodes/proxy subresource"),
    ("slow", "latency>1s", "calls slower than a second"),
];
