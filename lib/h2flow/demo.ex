defmodule H2Flow.Demo do
  @moduledoc """
  The demo server behind `mix h2flow.demo`: a handler and a few helpers, public so that tests
  and browser checks can start it on port 0. It is a demo, not an API to build on.

      {:ok, demo} = H2Flow.Demo.start(port: 0, tls_port: 0, max_concurrent_streams: 100)
      H2Flow.Demo.url(demo, :tls)        #=> "https://localhost:41567/"
      # ... open the page with ?autorun=1, or run nghttp / h2load against /slow ...
      H2Flow.Demo.counters(demo)         #=> %{in_flight: 0, peak_in_flight: 100, ...}
      H2Flow.Demo.last_report(demo)      #=> what the page saw, e.g. %{"completed" => 300, ...}
      H2Flow.Demo.stop(demo)

  ## Endpoints

    * `GET /`: the experiment page (`priv/demo/index.html`, no external assets), for clients
      that accept `text/html` (others get a line of text saying which version they spoke). It fires `n`
      fetches at `/slow?ms=…` over one connection and charts, live, the requests in flight at
      the server against the limit it advertised (SETTINGS_MAX_CONCURRENT_STREAMS), and the
      WINDOW_UPDATE frames it sent; it sums up the peak, the requests completed and the
      connections they used. It can also upload a large body to `/echo`, charting the bytes
      the server buffers against the connection's receive window. Query
      parameters: `n` (default 300), `ms` (default 1000), `autorun=1` (run the fetches on load),
      `upload=MiB` (run the upload on load, after the fetches if both are given). It POSTs
      each result to `/report` and sets `data-done="1"` on `<body>` once everything ran
      (`data-error` too if something failed).
    * `GET /slow?ms=N`: waits N ms (default 1000, at most 60000), then answers. Counts the
      requests in flight at the server and their peak, and how many arrived on each client
      connection (see `slow_per_connection/1`).
    * `POST /echo`: reads the whole body piece by piece and answers its size in bytes.
    * `GET /stats`: JSON: `H2Flow.stats/1` of the server (h2c or TLS) that answered, the
      demo's counters (see `counters/1`), `window_updates_sent` (connection + stream frames),
      `slow_per_connection`, `per_connection` (a few engine stats of each live connection,
      most streams first: streams, buffered bytes and their peak, receive window, WINDOW_UPDATE
      frames; the sums of `H2Flow.stats/1` add up the windows of all connections), the engine
      settings in force (`max_concurrent_streams`, `initial_connection_window`, ...) and
      `transport`.
    * `POST /report`: stores a result, sent as `application/x-www-form-urlencoded` (at most
      64 fields, 16 KiB); values that look like integers, floats or booleans are converted.
      `GET /report` (or `/report?kind=upload`) answers the last one as JSON, `404` when none.
    * `POST /reset`: zeroes the counters between experiments (see `reset/1`).

  Both servers speak HTTP/1.1 too (the cleartext one h2c as well, by prior knowledge or
  `Upgrade: h2c`; the TLS one h2 or HTTP/1.1 by ALPN). Browsers speak HTTP/2 only over TLS, so
  the page is meant for the TLS port; over HTTP/1.1 it runs all the same, on the few
  connections a browser opens. `GET /` answers a few lines of text to a client that does not
  ask for HTML (`curl http://localhost:8080/`).
  """

  alias H2Flow.Demo.Counters

  @enforce_keys [:tcp, :tls, :counters, :table, :settings]
  defstruct [:tcp, :tls, :counters, :table, :settings]

  @typedoc """
  A running demo: its h2c and TLS servers (`nil` when not started), the shared counters, the
  table holding reports, and the engine settings both servers use.
  """
  @type t :: %__MODULE__{
          tcp: H2Flow.server() | nil,
          tls: H2Flow.server() | nil,
          counters: :atomics.atomics_ref(),
          table: :ets.tid(),
          settings: map()
        }

  @start_defaults [port: 8080, tls_port: 8443, tls: true, ip: {0, 0, 0, 0}]

  @doc """
  Starts the demo: a cleartext server (h2c and HTTP/1.1) on `:port` and, unless `tls: false`,
  a TLS server (h2 and HTTP/1.1) on `:tls_port` with a certificate for `localhost` from
  `H2Flow.TLS.self_signed/1`, or with the
  `:ssl` options given as `:tls` (e.g. `H2Flow.TLS.self_signed(["localhost", "127.0.0.1"])`,
  whose CA a test hands to a browser with `H2Flow.TLS.ca_pem/1`). Both servers
  are linked to the caller and share the counters; the report table belongs to the caller. As
  with `H2Flow.start_link/1`, a server that fails to start (a port in use) also sends the
  caller an exit signal: trap exits to get `{:error, reason}` back instead.

  Options: `:port` (default 8080), `:tls_port` (default 8443), `:tls` (default `true`; `false`,
  or a keyword list of `:ssl` options with a certificate and key), `:ip`
  (default `{0, 0, 0, 0}`), and any engine option of `H2Flow` (`:max_concurrent_streams`,
  `:initial_connection_window`, `:initial_stream_window`, `:adaptive_window`, ...). Unknown
  options and invalid values raise `ArgumentError`.
  """
  @spec start(keyword()) :: {:ok, t()} | {:error, term()}
  def start(opts \\ []) do
    engine_keys = H2Flow.Engine.Options.keys()
    {engine_opts, opts} = Keyword.split(opts, engine_keys)

    for {key, _} <- opts, not Keyword.has_key?(@start_defaults, key) do
      raise ArgumentError, "unknown option #{inspect(key)}"
    end

    opts = Keyword.merge(@start_defaults, opts)
    # Checked here rather than by H2Flow.start_link/1 so that nothing is left running when one
    # of them is wrong.
    for key <- [:port, :tls_port], not (is_integer(opts[key]) and opts[key] in 0..65_535) do
      raise ArgumentError, "#{inspect(key)} must be in 0..65535, got: #{inspect(opts[key])}"
    end

    unless is_boolean(opts[:tls]) or (is_list(opts[:tls]) and opts[:tls] != []),
      do: raise(ArgumentError, ":tls must be a boolean or a keyword list of :ssl options")

    unless match?({_, _, _, _}, opts[:ip]) or match?({_, _, _, _, _, _, _, _}, opts[:ip]),
      do: raise(ArgumentError, ":ip must be an IP tuple, got: #{inspect(opts[:ip])}")

    settings = H2Flow.Engine.Options.validate!(engine_opts)
    table = :ets.new(__MODULE__, [:public, :set, read_concurrency: true])
    counters = Counters.new()
    demo = %__MODULE__{tcp: nil, tls: nil, counters: counters, table: table, settings: settings}
    common = [handler: H2Flow.Demo.Handler, ip: opts[:ip]] ++ engine_opts

    with {:ok, tcp} <- start_server(demo, :tcp, [port: opts[:port]] ++ common),
         {:ok, tls} <- maybe_start_tls(%{demo | tcp: tcp}, opts, common) do
      {:ok, %{demo | tcp: tcp, tls: tls}}
    end
  end

  defp maybe_start_tls(demo, opts, common) do
    if opts[:tls] do
      ssl = if opts[:tls] == true, do: H2Flow.TLS.self_signed(["localhost"]), else: opts[:tls]
      tls = [port: opts[:tls_port], tls: ssl]
      start_server(demo, :tls, [transport: :tls] ++ tls ++ common)
    else
      {:ok, nil}
    end
  end

  # Undoes what was started when a later server fails (e.g. its port is in use).
  defp start_server(demo, transport, opts) do
    case start_one(demo, transport, opts) do
      {:ok, _} = ok ->
        ok

      {:error, _} = error ->
        stop(demo)
        error
    end
  end

  defp start_one(demo, transport, opts) do
    state = %{counters: demo.counters, table: demo.table, settings: demo.settings}
    state = Map.put(state, :transport, transport)

    case H2Flow.start_link([handler_opts: state] ++ opts) do
      {:ok, server} ->
        # /stats looks the server up here: it only exists once start_link returned.
        :ets.insert(demo.table, {{:server, transport}, server})
        {:ok, server}

      {:error, _} = error ->
        error
    end
  end

  @doc """
  Stops both servers gracefully (`H2Flow.stop/1`: GOAWAY, then in-flight requests get up to
  `:shutdown_timeout`, 15 s by default) and deletes the report table. Stopping a demo twice is harmless.
  """
  @spec stop(t()) :: :ok
  def stop(%__MODULE__{} = demo) do
    for server <- [demo.tcp, demo.tls], server != nil do
      try do
        H2Flow.stop(server)
      catch
        :exit, _already_stopped -> :ok
      end
    end

    try do
      :ets.delete(demo.table)
    rescue
      # The caller that owned the table is gone, or the demo was stopped before.
      ArgumentError -> :ok
    end

    :ok
  end

  @doc "The port of the cleartext (`:tcp`) or TLS (`:tls`) server."
  @spec port(t(), :tcp | :tls) :: :inet.port_number()
  def port(%__MODULE__{} = demo, transport) when transport in [:tcp, :tls] do
    case Map.fetch!(demo, transport) do
      nil -> raise ArgumentError, "the demo runs without #{transport}"
      server -> H2Flow.port(server)
    end
  end

  @doc ~S'A URL of the demo on `localhost`, e.g. `url(demo, :tls, "/?autorun=1")`.'
  @spec url(t(), :tcp | :tls, String.t()) :: String.t()
  def url(%__MODULE__{} = demo, transport, path \\ "/") do
    scheme = if transport == :tls, do: "https", else: "http"
    "#{scheme}://localhost:#{port(demo, transport)}#{path}"
  end

  @doc """
  The demo's counters: `:in_flight` (`/slow` requests being served), `:peak_in_flight`,
  `:slow_started`, `:slow_completed`, `:echo_completed`, `:echo_last_bytes` (size of the last
  body `/echo` read), `:echo_largest_read` (the largest piece of a body `/echo` was handed at
  once) and `:reports`.
  """
  @spec counters(t() | map()) :: %{atom() => integer()}
  def counters(%{counters: ref}), do: Counters.all(ref)

  @doc """
  The last report the page POSTed to `/report` (of `kind`, e.g. `"slow"` or `"upload"`, when
  given), or `nil`. Keys are strings, values converted as described in the module doc.
  """
  @spec last_report(t() | map(), String.t() | nil) :: map() | nil
  def last_report(%{table: table}, kind \\ nil) do
    case :ets.lookup(table, {:report, kind}) do
      [{_, report}] -> report
      [] -> nil
    end
  end

  @doc """
  How many `/slow` requests each client connection (peer address and port) carried since the
  last `reset/1`, largest first: `[300]` when a browser sent them all on one connection.
  """
  @spec slow_per_connection(t() | map()) :: [pos_integer()]
  def slow_per_connection(%{table: table}) do
    table
    |> :ets.match({{:slow_peer, :_}, :"$1"})
    |> List.flatten()
    |> Enum.sort(:desc)
  end

  @doc """
  Zeroes the counters of `/slow` and `/echo`, between experiments: the peak becomes the
  requests in flight now. Reports are kept.
  """
  @spec reset(t() | map()) :: :ok
  def reset(%{counters: ref, table: table}) do
    Counters.reset(ref)
    :ets.match_delete(table, {{:slow_peer, :_}, :_})
    :ok
  end
end
