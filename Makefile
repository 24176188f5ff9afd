.PHONY: run test bench
run:
	./scripts/run
test:
	./scripts/test
# Sizes: make bench ARGS='--events 50000 --duration 30' (python -m bench --help)
bench:
	./bench/run $(ARGS)
