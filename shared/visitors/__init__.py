"""What a visitor does: sessions and numbers, responses, registration and claims, the guest limit, uploads."""
