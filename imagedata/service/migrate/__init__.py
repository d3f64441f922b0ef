"""`imagedata migrate-from-glance`: every image of a Glance, with its id, metadata, members and verified bytes.

``source``   the Glance being left: listings, records, members, downloads resumed with Range
``catalog``  finding that Glance through Keystone (openstacksdk / keystoneauth)
``record``   a Glance image as data, and how it differs from an imagedata image
``plan``     what to do with one image: create, continue, update, or leave it (and why)
``adopt``    the only module here that writes image rows, data and members
``transfer`` bytes from Glance into a store, md5 and os_hash recomputed on the way
``run``      the whole migration (or verification): selection, parallel transfers, outcomes
"""
