-- erasure: the guest rows, and with them their key hashes.
DELETE FROM guests WHERE id = ANY(CAST(:guest_ids AS uuid[]))
