"""The HTTP gateway: the only public door to Gatehouse."""
