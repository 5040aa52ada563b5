import netpol_dsl as n

shop = n.namespace("shop")
n.allow(shop >> 8080)  # E: a port where a zone is expected
