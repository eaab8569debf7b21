# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_opsg_replay_global_optspecs
    string join \n csv= format= chains= rules= catalog= policy= j/jobs= q/quiet h/help V/version
end

function __fish_opsg_replay_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_opsg_replay_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_opsg_replay_using_subcommand
    set -l cmd (__fish_opsg_replay_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -l csv -d 'Write per-case results as CSV to FILE (`-` for stdout)' -r -F
complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -l format -d 'Summary format on stdout: `text` prints nothing there (the summary goes to stderr), `json` writes the summary and every case\'s result as JSON' -r -f -a "text\t'The summary for people, on stderr'
json\t'The summary and results as JSON on stdout'"
complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -l chains -d 'Write each case\'s replayed chain to DIR/<case>.jsonl (for inspection with jq)' -r -F
complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -l rules -d 'Default triage rules (else the built-in ones); a case\'s own `rules` wins' -r -F
complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -l catalog -d 'Default action catalog (else the built-in one); a case\'s own `catalog` wins' -r -F
complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -l policy -d 'Default gate policy (else the built-in one); a case\'s own `policy` wins' -r -F
complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -s j -l jobs -d 'Worker threads (default: one per core)' -r
complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -s q -l quiet -d 'No progress bar'
complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -s V -l version -d 'Print version'
complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -a "record" -d 'Turn the chain on stdin (a live pipe\'s output) into a new case directory, passing the chain through to stdout unchanged'
complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -a "campaign" -d 'Run a fault campaign against opsg-sim (schemas/campaign.schema.json): each arm x fault x intensity x trial resets the sim, injects the fault, runs the pipe every interval as cron would, and measures time to detect, mitigate and resolve. CSV rows, a summary on stderr'
complete -c opsg-replay -n "__fish_opsg_replay_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c opsg-replay -n "__fish_opsg_replay_using_subcommand record" -l out -d 'The new case directory (must not hold a case yet)' -r -F
complete -c opsg-replay -n "__fish_opsg_replay_using_subcommand record" -l name -d 'The case\'s name (default: the directory name)' -r
complete -c opsg-replay -n "__fish_opsg_replay_using_subcommand record" -s q -l quiet -d 'No progress bar'
complete -c opsg-replay -n "__fish_opsg_replay_using_subcommand record" -s h -l help -d 'Print help'
complete -c opsg-replay -n "__fish_opsg_replay_using_subcommand campaign" -l csv -d 'Write one CSV row per trial to FILE (`-` for stdout)' -r -F
complete -c opsg-replay -n "__fish_opsg_replay_using_subcommand campaign" -l bin-dir -d 'Where the opsg binaries are (default: next to opsg-replay)' -r -F
complete -c opsg-replay -n "__fish_opsg_replay_using_subcommand campaign" -l work-dir -d 'Keep each trial\'s ledger, state and stderr here (default: a temporary directory, removed)' -r -F
complete -c opsg-replay -n "__fish_opsg_replay_using_subcommand campaign" -s q -l quiet -d 'No progress bar'
complete -c opsg-replay -n "__fish_opsg_replay_using_subcommand campaign" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c opsg-replay -n "__fish_opsg_replay_using_subcommand help; and not __fish_seen_subcommand_from record campaign help" -f -a "record" -d 'Turn the chain on stdin (a live pipe\'s output) into a new case directory, passing the chain through to stdout unchanged'
complete -c opsg-replay -n "__fish_opsg_replay_using_subcommand help; and not __fish_seen_subcommand_from record campaign help" -f -a "campaign" -d 'Run a fault campaign against opsg-sim (schemas/campaign.schema.json): each arm x fault x intensity x trial resets the sim, injects the fault, runs the pipe every interval as cron would, and measures time to detect, mitigate and resolve. CSV rows, a summary on stderr'
complete -c opsg-replay -n "__fish_opsg_replay_using_subcommand help; and not __fish_seen_subcommand_from record campaign help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
