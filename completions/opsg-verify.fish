complete -c opsg-verify -l settle -d 'Wait this long after the execution before measuring' -r
complete -c opsg-verify -l samples -d 'Samples per target in the verification window' -r
complete -c opsg-verify -l interval -d 'Time between samples' -r
complete -c opsg-verify -l stale-after -d 'A sample whose payload timestamps are older than this is stale (the outcome is then inconclusive)' -r
complete -c opsg-verify -l timeout -d 'Bound on one scrape attempt' -r
complete -c opsg-verify -l max-wait -d 'The longest to keep re-measuring an effect that is not there yet, counted from when the first action started; each effect\'s own `within_s` is the limit when it is shorter' -r
complete -c opsg-verify -l recheck -d 'Time between re-measurements while waiting for an effect' -r
complete -c opsg-verify -l actuators -d 'The actuators config rollbacks use (the same as opsg-exec\'s) [default: built-in]' -r -F
complete -c opsg-verify -l sim -l base-url -d 'The base URL templates call `{base_url}` (opsg-sim\'s address for the built-in actuators)' -r
complete -c opsg-verify -l state-dir -d 'Where rollback idempotency keys live (the same as opsg-exec\'s)' -r -F
complete -c opsg-verify -l no-rollback -d 'Do not roll back a failed fix (record the failure and leave the fleet as it is)'
complete -c opsg-verify -s h -l help -d 'Print help'
complete -c opsg-verify -s V -l version -d 'Print version'
