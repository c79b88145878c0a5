"""The Redis backplane: what several server instances share (``REDIS_URL``).

``client`` opens the connection (password or Entra ID token), ``hub`` carries
each user's events between instances, ``leases`` holds "one answer per
conversation" across instances and carries ``cancel_generation`` to the
instance that runs the answer, ``backplane`` puts them together.
"""
