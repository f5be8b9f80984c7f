# The :path_dependency tests compile a throwaway project that depends on this checkout, the
# :browser tests drive Debian's headless Chromium (/usr/bin/chromium), and the :interop suite
# (test/interop) drives Node.js, Go, grpcio, httpx, curl and Firefox ESR; skip them locally with
# `mix test --exclude path_dependency --exclude browser --exclude interop`. CI runs everything.
ExUnit.start()

# Cowboy integration (test/h2flow/cowboy_test.exs, tag :cowboy): h2flow does not depend on
# Cowboy, so those tests run only against a build named by COWBOY_EBIN, the colon-separated ebin
# directories of cowboy 2.13, cowlib 2.14 and ranch 1.8 (see the README, "Using with Cowboy").
# The tests tagged :no_cowboy need a VM without Cowboy and run when COWBOY_EBIN is not set.
case System.get_env("COWBOY_EBIN", "") do
  "" ->
    IO.puts("Excluding the :cowboy tests: COWBOY_EBIN is not set.")
    ExUnit.configure(exclude: [:cowboy | Keyword.get(ExUnit.configuration(), :exclude, [])])

  dirs ->
    for dir <- String.split(dirs, ":", trim: true) do
      Code.prepend_path(dir) == true || raise "COWBOY_EBIN: #{dir} is not a directory"
    end

    # test/h2flow/cowboy_mirror_test.exs defines stand-ins for Cowboy's modules.
    IO.puts("Excluding the :no_cowboy tests: COWBOY_EBIN is set.")
    ExUnit.configure(exclude: [:no_cowboy | Keyword.get(ExUnit.configuration(), :exclude, [])])
end
