"""Who is calling: tokens or Keystone, turned into a request's caller."""
