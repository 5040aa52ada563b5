import netpol_dsl as n

n.tcp(8080.0)  # E: float port
