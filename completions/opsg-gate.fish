# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_opsg_gate_global_optspecs
    string join \n policy= approval= ledger= state-dir= explain now= h/help V/version
end

function __fish_opsg_gate_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_opsg_gate_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_opsg_gate_using_subcommand
    set -l cmd (__fish_opsg_gate_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c opsg-gate -n "__fish_opsg_gate_needs_command" -l policy -d 'The policy file (schemas/policy.schema.json); without it, the conservative built-in (dry-run, approval for impactful actions, destructive blocked)' -r -F
complete -c opsg-gate -n "__fish_opsg_gate_needs_command" -l approval -d 'A signed approval token for this plan (from `opsg-gate approve`)' -r
complete -c opsg-gate -n "__fish_opsg_gate_needs_command" -l ledger -d 'The audit ledger: past executions there count for cooldowns and the hourly budget, and approvals used there are spent' -r -F
complete -c opsg-gate -n "__fish_opsg_gate_needs_command" -l state-dir -d 'Where state survives between runs (cooldowns, spent approvals, idempotency keys) [default: $XDG_STATE_HOME/opsg or ~/.local/state/opsg]' -r -F
complete -c opsg-gate -n "__fish_opsg_gate_needs_command" -l now -d 'Evaluate as of this time (RFC 3339) instead of the clock (replays, tests)' -r
complete -c opsg-gate -n "__fish_opsg_gate_needs_command" -l explain -d 'Print the evaluation, check by check, on stderr'
complete -c opsg-gate -n "__fish_opsg_gate_needs_command" -s h -l help -d 'Print help'
complete -c opsg-gate -n "__fish_opsg_gate_needs_command" -s V -l version -d 'Print version'
complete -c opsg-gate -n "__fish_opsg_gate_needs_command" -f -a "approve" -d 'Issue a signed approval token for one plan (key from OPSG_APPROVAL_KEY); prints the token'
complete -c opsg-gate -n "__fish_opsg_gate_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c opsg-gate -n "__fish_opsg_gate_using_subcommand approve" -l plan-hash -d 'The hash of the plan record to approve (the decision record\'s `plan_hash`)' -r
complete -c opsg-gate -n "__fish_opsg_gate_using_subcommand approve" -l from -d 'Approve the last plan of a recorded chain (the awaiting pipe\'s output); its actions are printed on stderr first, so the approver sees what they sign' -r -F
complete -c opsg-gate -n "__fish_opsg_gate_using_subcommand approve" -l approver -d 'Who approves (recorded in the decision and the ledger)' -r
complete -c opsg-gate -n "__fish_opsg_gate_using_subcommand approve" -l expires -d 'How long the token stays valid (`30m`, `2h`)' -r
complete -c opsg-gate -n "__fish_opsg_gate_using_subcommand approve" -l now -d 'Issue as of this time (RFC 3339) instead of the clock' -r
complete -c opsg-gate -n "__fish_opsg_gate_using_subcommand approve" -s h -l help -d 'Print help'
complete -c opsg-gate -n "__fish_opsg_gate_using_subcommand help; and not __fish_seen_subcommand_from approve help" -f -a "approve" -d 'Issue a signed approval token for one plan (key from OPSG_APPROVAL_KEY); prints the token'
complete -c opsg-gate -n "__fish_opsg_gate_using_subcommand help; and not __fish_seen_subcommand_from approve help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
