"""The Kubernetes operator (`hivegate operator`): ToolHive's custom resources, run on hivegate.

`handlers` says when (kopf's watches), `reconcile` what: `render` gathers what a workload references and writes
its manifests (`manifests`), checked by hivegate's own loaders, and `objects` the Kubernetes objects that run them
(`shape`: where each part runs). `configs` validates `MCPExternalAuthConfig` and `MCPOIDCConfig`; `refs` finds what
a spec references; `status` writes conditions like ToolHive's; `kube` is the one API client; `lease` the leader
election; `health` the operator's `/healthz` and `/metrics`; `runner` puts it together. kopf is imported only by
`handlers` and `runner`, lazily.
"""
