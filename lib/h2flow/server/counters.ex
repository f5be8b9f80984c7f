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
    :handlers_stopped,
    :http1_0_requests
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

  @doc """
  Counts a connection in the server's `:connections` from now on, until `leave/1` (or until
  its process is gone: the presence is a NIF resource).
  """
  @spec join(t() | nil) :: reference() | nil
  def join(nil), do: nil
  def join(%__MODULE__{totals: totals}), do: Native.totals_join(totals)

  @doc "The connection closed: it moves to `:connections_closed`."
  @spec leave(reference() | nil) :: :ok
  def leave(nil), do: :ok
  def leave(presence), do: Native.totals_leave(presence)

  @doc "Links a connection's engine to the server's totals (see h2flow_core::totals)."
  @spec report_to(H2Flow.Engine.t(), t() | nil) :: :ok
  def report_to(_engine, nil), do: :ok
  def report_to(engine, %__MODULE__{totals: totals}), do: Native.engine_report_to(engine, totals)

  @doc """
  Everything the server counted: `H2Flow.stats/1`. The HTTP/1.1 engines' totals are under
  `:http1` (their refusals by kind under `http1.rejected`); `:requests` counts requests by
  version.
  """
  @spec read(t()) :: map()
  def read(%__MODULE__{totals: totals, local: ref}) do
    {http10, local} =
      for({key, i} <- Enum.with_index(@local, 1), into: %{}, do: {key, :counters.get(ref, i)})
      |> Map.pop(:http1_0_requests)

    {rejected, totals} = totals |> Native.totals_read() |> Map.pop(:http1_rejected)
    http1 = Map.put(totals.http1, :rejected, rejected)
    # An h2c upgrade's request is counted by both engines: it is answered over HTTP/2.
    # (Engines report at their flushes: the difference is never shown below 0.)
    http11 = max(http1.requests - http1.upgrades - http10, 0)
    requests = %{"HTTP/1.0": http10, "HTTP/1.1": http11, "HTTP/2": totals.streams_opened}
    totals |> Map.merge(local) |> Map.merge(%{http1: http1, requests: requests})
  end
end
