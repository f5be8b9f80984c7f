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

# Plug and Phoenix (tags :plug and :phoenix: test/h2flow/plug_*_test.exs, phoenix_test.exs):
# h2flow does not depend on them, so those tests run only against builds named by PLUG_EBIN
# (the ebin directories of plug, mime, plug_crypto and telemetry, colon-separated) and
# PHOENIX_EBIN (phoenix, phoenix_pubsub, phoenix_template, websock, websock_adapter, castore,
# jason and Plug's); see the README, "Using with Plug and Phoenix". The JSON parser test (tag
# :jason) needs Jason in one of them. The :no_plug tests need a VM without Plug.
ebin = fn var ->
  for dir <- String.split(System.get_env(var, ""), ":", trim: true) do
    Code.prepend_path(dir) == true || raise "#{var}: #{dir} is not a directory"
  end
end

plug? = ebin.("PLUG_EBIN") != []
phoenix? = ebin.("PHOENIX_EBIN") != []

# Telemetry (tags :telemetry and :no_telemetry: test/h2flow/telemetry_*_test.exs): h2flow does
# not depend on :telemetry; the :telemetry tests run against the real library when
# TELEMETRY_EBIN names its ebin directory (or PLUG_EBIN/PHOENIX_EBIN, which include it), the
# :no_telemetry tests against a stand-in (test/h2flow/telemetry_standin_test.exs) in a VM
# without it.
_ = ebin.("TELEMETRY_EBIN")
telemetry? = Code.ensure_loaded?(:telemetry)

excluded =
  [
    # The client's tests against nghttpd (Debian nghttp2-server).
    {System.find_executable("nghttpd") == nil, :nghttpd, "nghttpd is not on PATH"},
    {not plug?, :plug, "PLUG_EBIN is not set"},
    {plug? or phoenix?, :no_plug, "Plug is in the code path"},
    {not phoenix?, :phoenix, "PHOENIX_EBIN is not set"},
    {not Code.ensure_loaded?(Jason), :jason, "Jason is not in PLUG_EBIN or PHOENIX_EBIN"},
    {not telemetry?, :telemetry, "TELEMETRY_EBIN is not set"},
    {telemetry?, :no_telemetry, "the telemetry library is in the code path"}
  ]
  |> Enum.filter(&elem(&1, 0))

for {_, tag, reason} <- excluded, do: IO.puts("Excluding the #{inspect(tag)} tests: #{reason}.")
exclude = for {_, tag, _} <- excluded, do: tag
ExUnit.configure(exclude: exclude ++ Keyword.get(ExUnit.configuration(), :exclude, []))

if telemetry?, do: {:ok, _} = Application.ensure_all_started(:telemetry)
if plug?, do: {:ok, _} = Application.ensure_all_started(:plug)
if phoenix?, do: {:ok, _} = Application.ensure_all_started(:phoenix)
