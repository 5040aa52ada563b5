import netpol_dsl as n

n.icmp("echo-request")  # E: ICMP types are numbers
