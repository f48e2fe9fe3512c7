"""What chatd, chatctl and chat-director share: the wire, auth, identity, names, paths,
log set-up, systemd notification and exit codes. It imports none of the programs."""
