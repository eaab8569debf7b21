# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_opsg_audit_global_optspecs
    string join \n ledger= notify= h/help V/version
end

function __fish_opsg_audit_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_opsg_audit_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_opsg_audit_using_subcommand
    set -l cmd (__fish_opsg_audit_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c opsg-audit -n "__fish_opsg_audit_needs_command" -l ledger -d 'The ledger to append to (as `append --ledger`)' -r -F
complete -c opsg-audit -n "__fish_opsg_audit_needs_command" -l notify -d 'Post a short incident summary to this webhook URL with the append (as `append --notify`)' -r
complete -c opsg-audit -n "__fish_opsg_audit_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c opsg-audit -n "__fish_opsg_audit_needs_command" -s V -l version -d 'Print version'
complete -c opsg-audit -n "__fish_opsg_audit_needs_command" -f -a "append" -d 'Verify the incoming chain, append it and its incident report to the ledger, pass both on'
complete -c opsg-audit -n "__fish_opsg_audit_needs_command" -f -a "verify" -d 'Check every line and link of a ledger; name the exact line of any tampering'
complete -c opsg-audit -n "__fish_opsg_audit_needs_command" -f -a "checkpoint" -d 'Write the ledger\'s head (line count and hash, HMAC-signed with a key) to keep elsewhere'
complete -c opsg-audit -n "__fish_opsg_audit_needs_command" -f -a "show" -d 'Print incident timelines: observed, inferred, proposed, decided, executed, verified'
complete -c opsg-audit -n "__fish_opsg_audit_needs_command" -f -a "stats" -d 'Time to detect, time to mitigate, MTTR, outcomes and actions, per incident and per class'
complete -c opsg-audit -n "__fish_opsg_audit_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand append" -l ledger -d 'The ledger file (created if missing; its directory must exist)' -r -F
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand append" -l notify -d 'Post a short incident summary (Slack-compatible `{"text": …}` plus fields) to this URL' -r
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand append" -l notify-timeout -d 'How long the notification may take, e.g. `5s`' -r
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand append" -l max-record-bytes -d 'The largest record accepted on stdin, bytes' -r
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand append" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand verify" -l ledger -d 'The ledger file' -r -F
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand verify" -l checkpoint -d 'Also check against a checkpoint (truncation, rewriting; its MAC with OPSG_CHECKPOINT_KEY)' -r -F
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand verify" -l format -d 'Output format' -r -f -a "text\t'A one-line summary on stderr'
json\t'A JSON object on stdout (and the summary line on stderr)'"
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand verify" -s q -l quiet -d 'No progress bar (it is only drawn when stderr is a terminal anyway)'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand checkpoint" -l ledger -d 'The ledger file (verified first: a checkpoint never blesses a tampered ledger)' -r -F
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand checkpoint" -l out -d 'Write the checkpoint here (atomically) instead of stdout' -r -F
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand checkpoint" -s q -l quiet -d 'No progress bar'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand checkpoint" -s h -l help -d 'Print help'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand show" -l ledger -d 'The ledger file' -r -F
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand show" -l incident -d 'Only this incident (an incident id, or a run id)' -r
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand show" -l format -d 'Output format' -r -f -a "text\t'An indented timeline per incident'
json\t'One JSON object per event (JSON Lines)'
csv\t'One CSV row per event, with a header'"
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand show" -l no-verify -d 'Skip verifying the ledger first (faster; tampering goes unnoticed)'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand show" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand stats" -l ledger -d 'The ledger file' -r -F
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand stats" -l format -d 'Output format' -r -f -a "table\t'Aligned columns'
csv\t'CSV with a header'
json\t'One JSON object: `{"incidents": […], "classes": […]}`'"
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand stats" -l by -d 'Rows per incident, per class, or both' -r -f -a "both\t'One row per incident, then one per class (table and JSON); incidents only for CSV'
incident\t'One row per incident'
class\t'One row per incident class'"
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand stats" -l no-verify -d 'Skip verifying the ledger first'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand stats" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand help; and not __fish_seen_subcommand_from append verify checkpoint show stats help" -f -a "append" -d 'Verify the incoming chain, append it and its incident report to the ledger, pass both on'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand help; and not __fish_seen_subcommand_from append verify checkpoint show stats help" -f -a "verify" -d 'Check every line and link of a ledger; name the exact line of any tampering'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand help; and not __fish_seen_subcommand_from append verify checkpoint show stats help" -f -a "checkpoint" -d 'Write the ledger\'s head (line count and hash, HMAC-signed with a key) to keep elsewhere'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand help; and not __fish_seen_subcommand_from append verify checkpoint show stats help" -f -a "show" -d 'Print incident timelines: observed, inferred, proposed, decided, executed, verified'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand help; and not __fish_seen_subcommand_from append verify checkpoint show stats help" -f -a "stats" -d 'Time to detect, time to mitigate, MTTR, outcomes and actions, per incident and per class'
complete -c opsg-audit -n "__fish_opsg_audit_using_subcommand help; and not __fish_seen_subcommand_from append verify checkpoint show stats help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
