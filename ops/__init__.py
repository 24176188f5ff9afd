"""Operations: the gatehouse CLI, the process supervisor and the local broker."""
