complete -c opsg-exec -l actuators -d 'The actuators config (schemas/actuators.schema.json) [default: built-in, opsg-sim\'s admin API]' -r -F
complete -c opsg-exec -l sim -l base-url -d 'The base URL templates call `{base_url}` (opsg-sim\'s address for the built-in actuators)' -r
complete -c opsg-exec -l state-dir -d 'Where idempotency keys and action history live [default: $XDG_STATE_HOME/opsg or ~/.local/state/opsg]' -r -F
complete -c opsg-exec -l now -d 'Stamp the record with this time (RFC 3339) instead of the clock' -r
complete -c opsg-exec -l execute -d 'Really call the actuators (also requires the decision\'s mode to be `live`)'
complete -c opsg-exec -s h -l help -d 'Print help'
complete -c opsg-exec -s V -l version -d 'Print version'
