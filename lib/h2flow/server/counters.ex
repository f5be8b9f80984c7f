defmodule H2Flow.Server.Counters do
  @moduledoc false
  # The counters of one server, which every connection adds to without a message: the engines'
  # totals (a NIF resource of atomics, h2flow_core::totals, which each engine reports its
  # changes to when it flushes) and an Erlang :counters array for what the Elixir side counts.
  # Reading them (H2Flow.stats/1) costs the same with one connection or ten thousand, and never
  # waits on any of them.

  alias H2Flow.Native

  @enforce_keys [:totals, :local]
  defstruct [:totals, :local]

  @type t :: %__MODULE__{totals: reference(), local: :counters.counters_ref()}

  # What connections and their streams count, besides the engine (index in :local).
  @local [
    :writes,
    :write_timeouts,
    :preface_timeouts,
    :idle_timeouts,
    :tls_handshake_failures,
    :handlers_started,
    :handler_crashes,
    :handlers_stopped
  ]

  @doc "The keys counted on the Elixir side."
  def local_keys, do: @local

  @spec new() :: t()
  def new do
    %__MODULE__{
      totals: Native.totals_new(),
      local: :counters.new(length(@local), [:write_concurrency])
    }
  end

  @doc "Adds `n` to a local counter; `nil` counters (an engine without a server) count nothing."
  @spec add(t() | nil, atom(), integer()) :: :ok
  def add(counters, key, n \\ 1)
  def add(nil, _key, _n), do: :ok

  for {key, i} <- Enum.with_index(@local, 1) do
    def add(%__MODULE__{local: ref}, unquote(key), n), do: :counters.add(ref, unquote(i), n)
  end

  @doc "Links a connection's engine to the server's totals (see h2flow_core::totals)."
  @spec report_to(H2Flow.Engine.t(), t() | nil) :: :ok
  def report_to(_engine, nil), do: :ok
  def report_to(engine, %__MODULE__{totals: totals}), do: Native.engine_report_to(engine, totals)

  @doc "Everything the server counted: `H2Flow.stats/1`."
  @spec read(t()) :: map()
  def read(%__MODULE__{totals: totals, local: ref}) do
    local =
      for {key, i} <- Enum.with_index(@local, 1), into: %{}, do: {key, :counters.get(ref, i)}

    totals |> Native.totals_read() |> Map.merge(local)
  end
end
