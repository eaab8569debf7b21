complete -c opsg-sim -l listen -d 'Address of the control API (`/state`, `/chaos`, `/admin`); port 0 picks a free port' -r
complete -c opsg-sim -l seed -d 'Seed of every random draw: the same seed and the same calls give the same metrics' -r
complete -c opsg-sim -l speed -d 'Simulated seconds per real second for the background ticker' -r
complete -c opsg-sim -l rate -d 'Fleet-wide request arrival rate before faults, requests per second' -r
complete -c opsg-sim -l stable-replicas -d 'Initial replicas of the `stable` deployment' -r
complete -c opsg-sim -l canary-replicas -d 'Initial replicas of the `canary` deployment' -r
complete -c opsg-sim -l nodes -d 'GPU nodes (8 GPUs each)' -r
complete -c opsg-sim -l epoch -d 'Unix time of sim time 0 [default: 1767225600 (2026-01-01) with --manual-clock, else now]' -r
complete -c opsg-sim -l log-dir -d 'Write a vLLM-like log per replica (`<replica>.log`) and a kernel log per node here' -r -F
complete -c opsg-sim -l manual-clock -d 'Advance time only on `POST /tick` (deterministic tests); otherwise a ticker runs'
complete -c opsg-sim -l exit-on-stdin-eof -d 'Exit when stdin reaches end-of-file (so a test harness cannot leak the process)'
complete -c opsg-sim -s h -l help -d 'Print help (see more with \'--help\')'
complete -c opsg-sim -s V -l version -d 'Print version'
