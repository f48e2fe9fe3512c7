"""The IRC gateway (``chatd --irc``): any IRC client becomes a chat client of this node.

``parse`` (lines), ``numerics``, ``nicks`` (display names -> nicks), ``channel`` (texts <->
lines of ``#chat``), ``node`` (what the gateway needs of the node), ``session``
(registration and a connection's tasks), ``commands`` (a registered client's commands),
``relay`` (the node's deliveries and membership as lines), ``server`` (the listener,
options and password).
"""
