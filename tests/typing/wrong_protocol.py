import netpol_dsl as n

shop = n.namespace("shop")
n.allow(shop >> shop, n.tcp(8080), direction="sideways")  # E: direction literal
