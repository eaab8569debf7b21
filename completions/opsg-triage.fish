complete -c opsg-triage -l rules -d 'Detection rules (JSON, schemas/rules.schema.json); replaces the built-in set' -r -F
complete -c opsg-triage -l now -d 'The clock, RFC 3339 (default: now). Same input + same --now = same output bytes' -r
complete -c opsg-triage -l history -d 'opsg-audit ledger: continue incidents it recorded, compare host/GPU snapshots with earlier runs\' (refused, with a note, if it fails verification)' -r -F
complete -c opsg-triage -l state-dir -d 'Directory for incident continuity state (DIR/incidents.json) and the fleet\'s usual traffic (DIR/traffic.json)' -r -F
complete -c opsg-triage -l continue-within -d 'Continue an incident seen with the same fingerprint within this long' -r
complete -c opsg-triage -l llm-url -d 'Endpoint base URL (e.g. http://127.0.0.1:8000/v1 for vLLM, https://api.anthropic.com)' -r
complete -c opsg-triage -l llm-model -d 'Model name' -r
complete -c opsg-triage -l llm-api -d 'Wire format' -r -f -a "openai\t'OpenAI-compatible chat completions (vLLM, Ollama, OpenAI, most gateways)'
anthropic\t'The Anthropic Messages API'"
complete -c opsg-triage -l llm-timeout -d 'Whole-request timeout (the connect timeout is the smaller of this and 5s)' -r
complete -c opsg-triage -l llm -d 'Ask an LLM advisor (off by default); its answer is validated and falls back to the rules. The API key is read from OPSG_LLM_API_KEY only, never from a flag'
complete -c opsg-triage -s h -l help -d 'Print help (see more with \'--help\')'
complete -c opsg-triage -s V -l version -d 'Print version'
