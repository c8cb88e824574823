"""The composition root shared by `hivegate run` (`hivegate.compose.run_gateway`) and `hivegate vmcp serve`
(`hivegate.vmcp.gateway`): what both build the same way, built in one place so the two cannot drift.

- `operations`: audit, metrics and tracing (the observers), with their start-up summary lines and shutdown hooks;
- `policies`: the live Cedar policy set behind a gate, reloaded on SIGHUP (both) and when its file changes (`run`).
"""
