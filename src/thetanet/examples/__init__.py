"""The lecture's worked examples that train networks: logic gates and handwritten digits.

Each example uses the engine (:mod:`thetanet.builders`, :class:`~thetanet.model.Sequential`)
on data from :mod:`thetanet.data`; ``thetanet logic`` and ``thetanet digits`` run them.
"""
