"""Every place Gatehouse speaks AMQP itself instead of through plain nameko, and why.

(Being filled in; see the modules.)
"""
