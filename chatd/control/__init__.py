"""The control socket: JSON Lines requests from chatctl (or any program) over a Unix
socket. ``server`` serves connections, ``ops`` answers requests, ``views`` builds what
they show, ``access`` decides who may connect, ``socket_file`` prepares the socket's path."""
