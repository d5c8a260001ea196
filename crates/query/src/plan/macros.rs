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
    (
        "slow",
        SLOW,
        "calls slower than a second, long-running ones aside (watches, exec, attach, port-forward, proxy, followed logs)",
    ),
];

/// `@slow`: `latency>1s` without the requests the API server itself counts as long-running and
/// leaves out of its latency metrics (kube-apiserver's `BasicLongRunningRequestCheck`: the verbs
/// `watch` and `proxy`, the subresources `exec`, `attach`, `portforward` and `proxy`). Its list
/// also names `log` whole; here only followed logs are left out (`log?follow=…`, open until the
/// container ends), since a plain log read that takes seconds is a slow call. A query parameter
/// reads as true unless it is `0` or `false` (any case), so `follow` alone is following too.
const SLOW: &str = "latency>1s -verb:(watch OR proxy) -subresource:(exec OR attach OR portforward OR proxy) \
                    -(subresource:log uri:/[?&]follow(=|&|$)/ -uri:/[?&]follow=(0|(?i:false))(&|$)/)";
