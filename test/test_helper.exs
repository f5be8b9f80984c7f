# The :path_dependency tests compile a throwaway project that depends on this checkout; skip
# them locally with `mix test --exclude path_dependency`. CI runs everything.
ExUnit.start()
