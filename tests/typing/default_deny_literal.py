import netpol_dsl as n

n.baseline(default_deny="all")  # E: default_deny literal
