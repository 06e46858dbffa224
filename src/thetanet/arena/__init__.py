"""The competition arena: teams submit predictions for a hidden test set, a public board ranks
them on a seeded part of it, and the private board on the rest shows when the organiser closes
the competition. ``app`` (the web app), ``storage`` (SQLite or PostgreSQL through SQLAlchemy,
``schema``'s versioned migrations), ``scoring`` (the official metric, from
:mod:`thetanet.compounds.scoring`) and ``guards`` (request bounds). Needs the ``arena`` extra.
"""
