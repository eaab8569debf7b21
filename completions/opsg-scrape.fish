complete -c opsg-scrape -l target -d 'A /metrics URL to scrape (repeatable)' -r
complete -c opsg-scrape -l targets -d 'A JSON targets file (schemas/targets.schema.json): names, URLs and labels (deployment, role canary/stable, route, node); a Prometheus file_sd file works as is' -r -F
complete -c opsg-scrape -l file -d 'A recorded exposition capture to replay (repeatable; `-` reads stdin), plain or gzip (found by its magic bytes; --max-bytes caps the inflated size). Marks the record as a replay and its samples stale' -r -F
complete -c opsg-scrape -l format -d 'Parse --file captures (and stdin) as this format. `auto` takes a body whose last line is `# EOF` for OpenMetrics, which misreads a text capture ending in such a comment or an OpenMetrics capture cut short; HTTP targets always go by the server\'s `Content-Type`' -r -f -a "auto\t'OpenMetrics when the body\'s last line is `# EOF`, else Prometheus text'
prometheus\t'Prometheus text format 0.0.4 (a trailing `# EOF` line is then just a comment)'
openmetrics\t'OpenMetrics 1.0 text'"
complete -c opsg-scrape -l prometheus -d 'A Prometheus-compatible HTTP API base URL to query (with --query)' -r
complete -c opsg-scrape -l query -d 'A PromQL expression for --prometheus (repeatable). When it is a bare selector (`x`, `x{job="vllm"}`, `{job="vllm"}`), the series\' types (counter, gauge) are looked up in `/api/v1/metadata` (bounded; without it the types stay unknown and the reason says why)' -r
complete -c opsg-scrape -l federate -d 'Federate from this Prometheus (its base URL): GET `/federate` with the --match selectors, one target per `instance` of the answer (types, histograms and `job` kept), so triage reads a fleet Prometheus scrapes like replicas scraped directly' -r
complete -c opsg-scrape -l match -d 'A series selector for --federate (repeatable, sent as `match[]`), e.g. `{job="vllm"}`' -r
complete -c opsg-scrape -l range -d 'Make the queries range queries over this window ending now (e.g. `10m`)' -r
complete -c opsg-scrape -l step -d 'Resolution of range queries (default: the range / 60, at least 1 s)' -r
complete -c opsg-scrape -l samples -d 'Samples per target, `--interval` apart (rates and trends need at least 2)' -r
complete -c opsg-scrape -l interval -d 'Time between samples' -r
complete -c opsg-scrape -l timeout -d 'Bound on one HTTP attempt (connect, answer and body)' -r
complete -c opsg-scrape -l connect-timeout -d 'Bound on connecting' -r
complete -c opsg-scrape -l retries -d 'Extra attempts after a transient failure (refused, timeout, 5xx, 429), with jittered exponential backoff' -r
complete -c opsg-scrape -l backoff -d 'First backoff between attempts (doubles each time, at most 8 s)' -r
complete -c opsg-scrape -l max-bytes -d 'Largest payload accepted per scrape, after decompression (`64MiB`); a larger one is recorded as an error after reading one byte past the cap' -r
complete -c opsg-scrape -l concurrency -d 'Targets scraped at once' -r
complete -c opsg-scrape -l stale-after -d 'A payload whose own timestamps are older than this marks its sample stale' -r
complete -c opsg-scrape -l keep -d 'Also keep families matching this glob (repeatable; `*` keeps all). See the selection below' -r
complete -c opsg-scrape -l header -d 'Send this request header with every HTTP request of the run, targets and Prometheus alike (repeatable; `Name: value`, e.g. a Mimir tenant `X-Scope-OrgID: fleet`)' -r
complete -c opsg-scrape -l bearer-token-file -d 'Send `Authorization: Bearer <token>` with the token read from this file (kept off the command line, as Prometheus\' `bearer_token_file`)' -r -F
complete -c opsg-scrape -l ca-file -d 'Trust the CA certificates in this PEM file for HTTPS targets and Prometheus (an internal CA), instead of the bundled Mozilla roots' -r -F
complete -c opsg-scrape -l evidence-dir -d 'Store raw payloads here, content-addressed (`DIR/sha256/<hex>`), referenced from the record' -r -F
complete -c opsg-scrape -l now -d 'Freeze the clock at this RFC 3339 time (replays, golden tests): samples are at NOW + k×interval and durations read 0' -r
complete -c opsg-scrape -l run-id -d 'Use this run (correlation) id instead of a fresh one' -r
complete -c opsg-scrape -l process -d 'Per-process RSS, threads and fds for processes with this name (repeatable)' -r
complete -c opsg-scrape -l nvml-lib -d 'Load NVML from this library instead of `libnvidia-ml.so.1` from the loader\'s path (a driver installed outside it, a container\'s mount). A library that does not load makes the GPUs unavailable, with the path and why in the record' -r -F
complete -c opsg-scrape -l xid-window -d 'How long --gpu watches for XID events (driver-reported GPU errors) before reporting; `0` does not watch. At most 60 s' -r
complete -c opsg-scrape -l cpu-interval -d 'Time between the two /proc readings that give CPU and disk utilization for --host and --process (default 250ms); `0` records raw counters only. At most 10 s' -r
complete -c opsg-scrape -l cgroup -d 'cgroup v2 memory/CPU/pressure stats of this service (repeatable)' -r
complete -c opsg-scrape -l alertmanager -d 'Read active alerts from this Alertmanager (API v2)' -r
complete -c opsg-scrape -l alerts-file -d 'Read an Alertmanager webhook payload from a file (`-` for stdin)' -r -F
complete -c opsg-scrape -l log -d 'Tail this log (bounded) and count error signatures (repeatable)' -r -F
complete -c opsg-scrape -l proc-root -d 'Root of procfs' -r -F
complete -c opsg-scrape -l cgroup-root -d 'Root of the cgroup v2 hierarchy' -r -F
complete -c opsg-scrape -l as-targets -d 'Also turn the query results into targets, one per `instance` label (histograms rebuilt from `_bucket`/`_sum`/`_count`, `up` = 0 marks it down), so triage reads a fleet watched by Prometheus like scraped replicas. E.g. --query \'{job="vllm"}\' --range 5m --as-targets'
complete -c opsg-scrape -l host -d 'Collect host signals from procfs (CPU, memory, PSI, load, disk, OOM kills)'
complete -c opsg-scrape -l gpu -d 'Collect GPU state through NVML (reported unavailable, with why, without a GPU)'
complete -c opsg-scrape -s q -l quiet -d 'No progress bar'
complete -c opsg-scrape -s h -l help -d 'Print help (see more with \'--help\')'
complete -c opsg-scrape -s V -l version -d 'Print version'
