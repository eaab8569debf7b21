complete -c opsg-plan -l catalog -d 'Action catalog (JSON, schemas/catalog.schema.json); replaces the built-in one' -r -F
complete -c opsg-plan -l history -d 'opsg-audit ledger to learn from (runbook memory)' -r -F
complete -c opsg-plan -l fleet-state -d 'A GET /state snapshot of the fleet admin API (weights, versions, replicas)' -r -F
complete -c opsg-plan -l now -d 'The clock, RFC 3339 (default: now). Same input + same --now = same output bytes' -r
complete -c opsg-plan -l llm-url -d 'Endpoint base URL (e.g. http://127.0.0.1:8000/v1 for vLLM, https://api.anthropic.com)' -r
complete -c opsg-plan -l llm-model -d 'Model name' -r
complete -c opsg-plan -l llm-api -d 'Wire format' -r -f -a "openai\t'OpenAI-compatible chat completions (vLLM, Ollama, OpenAI, most gateways)'
anthropic\t'The Anthropic Messages API'"
complete -c opsg-plan -l llm-timeout -d 'Whole-request timeout (the connect timeout is the smaller of this and 5s)' -r
complete -c opsg-plan -l llm -d 'Ask an LLM advisor (off by default); its answer is validated and falls back to the rules. The API key is read from OPSG_LLM_API_KEY only, never from a flag'
complete -c opsg-plan -s h -l help -d 'Print help (see more with \'--help\')'
complete -c opsg-plan -s V -l version -d 'Print version'
