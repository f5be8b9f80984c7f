defmodule H2Flow.Test.AttackHelpers do
  @moduledoc false
  # Shared by the attack and load tests: memory measured around an attack (the VM, the OS
  # process's peak resident set, the heaps of server processes), raw frames for bursts, reading
  # until the server's GOAWAY, and the check that the server still serves.

  import ExUnit.Assertions
  import H2Flow.Test.ServerHelpers

  alias H2Flow.Test.H2Client

  @end_stream 0x1
  @end_headers 0x4

  @doc """
  Runs `fun` (the attack) and measures memory around it. Returns `{result, mem}` with, in bytes:
  `:total` and `:binary`, the growth of `:erlang.memory/0` from before the attack to after it
  (both after a garbage collection of every process); `:rss`, the growth of the OS process's
  resident set (the engine's memory lives outside the BEAM) and `:peak_rss`, its peak during
  the attack over the resident set before (Linux's VmHWM, reset through /proc/self/clear_refs);
  `:large_heaps`, the processes other than the caller whose heap blocks (young and old) grew
  past `heap_bound` bytes at a garbage collection during the attack, with that size
  (`:erlang.system_monitor/2`, `large_heap`: a heap only grows through a collection, so none is
  missed).
  """
  def measure(fun, heap_bound \\ 4 * 1024 * 1024) do
    gc_all()
    before = memory()
    reset_peak_rss()
    words = div(heap_bound, :erlang.system_info(:wordsize))
    previous = :erlang.system_monitor(self(), large_heap: words)

    result =
      try do
        fun.()
      after
        restore_monitor(previous)
      end

    peak = peak_rss()
    gc_all()
    after_ = memory()

    mem = %{
      total: after_.total - before.total,
      binary: after_.binary - before.binary,
      rss: after_.rss - before.rss,
      peak_rss: peak - before.rss,
      large_heaps: large_heaps([])
    }

    {result, mem}
  end

  defp restore_monitor(:undefined), do: :erlang.system_monitor(:undefined)
  defp restore_monitor({pid, opts}), do: :erlang.system_monitor(pid, opts)

  defp large_heaps(acc) do
    me = self()

    receive do
      {:monitor, ^me, :large_heap, _} -> large_heaps(acc)
      {:monitor, pid, :large_heap, info} -> large_heaps([{pid, heap_bytes(info)} | acc])
    after
      0 -> acc
    end
  end

  # What the large_heap limit applies to: every heap block, young and old, in bytes.
  defp heap_bytes(info) do
    words = Keyword.get(info, :heap_block_size, 0) + Keyword.get(info, :old_heap_block_size, 0)
    words * :erlang.system_info(:wordsize)
  end

  @doc "Asserts the memory measured by `measure/2` stayed within `bound` bytes."
  def assert_bounded(mem, bound) do
    assert mem.large_heaps == [], "processes with a heap over the bound: #{inspect(mem)}"
    assert mem.total < bound, "VM memory grew #{mem.total} bytes (bound #{bound})"
    assert mem.binary < bound, "binary memory grew #{mem.binary} bytes (bound #{bound})"
    assert mem.peak_rss < bound, "peak RSS grew #{mem.peak_rss} bytes (bound #{bound})"
    mem
  end

  def gc_all do
    for pid <- Process.list(), do: :erlang.garbage_collect(pid)
    :ok
  end

  @doc "`:erlang.memory/0` total and binary, and the OS process's resident set, in bytes."
  def memory do
    m = :erlang.memory()
    %{total: m[:total], binary: m[:binary], rss: status_kib("VmRSS") * 1024}
  end

  def reset_peak_rss, do: File.write!("/proc/self/clear_refs", "5")
  def peak_rss, do: status_kib("VmHWM") * 1024

  defp status_kib(field) do
    [_, kib] = Regex.run(~r/#{field}:\s+(\d+) kB/, File.read!("/proc/self/status"))
    String.to_integer(kib)
  end

  @doc "The memory of a live process (heap, stack, messages), and its off-heap binaries."
  def process_memory(pid) do
    [memory: heap, binary: binaries] = Process.info(pid, [:memory, :binary])
    heap + (binaries |> Enum.uniq_by(&elem(&1, 0)) |> Enum.map(&elem(&1, 1)) |> Enum.sum())
  end

  # --- frames --------------------------------------------------------------------------

  @doc "A request's pseudo-header fields plus `extra`."
  def request_fields(method \\ "GET", path \\ "/", extra \\ []) do
    [{":method", method}, {":scheme", "http"}, {":authority", "localhost"}, {":path", path}] ++
      extra
  end

  @doc "A HEADERS frame (END_HEADERS) with a literal block of `fields`."
  def headers_frame(id, fields, end_stream? \\ true) do
    flags = @end_headers + if(end_stream?, do: @end_stream, else: 0)
    H2Client.encode_frame(:headers, flags, id, H2Client.encode_literal_block(fields))
  end

  def rst_frame(id, code \\ 0x8), do: H2Client.encode_frame(:rst_stream, 0, id, <<code::32>>)
  def ping_frame(data \\ <<0::64>>), do: H2Client.encode_frame(:ping, 0, 0, data)

  def data_frame(id, data, end_stream? \\ false),
    do: H2Client.encode_frame(:data, if(end_stream?, do: @end_stream, else: 0), id, data)

  @doc "Writes `bytes`; the server may already have closed the connection."
  def send_flood(conn, bytes) do
    case H2Client.send_raw(conn, bytes) do
      :ok -> :ok
      {:error, reason} when reason in [:closed, :econnreset, :epipe, :timeout] -> :ok
    end
  end

  # --- reading -------------------------------------------------------------------------

  @doc """
  Reads until the server closes the connection, then closes it too; returns every frame read
  (parsed), in order. Fails if a GOAWAY is followed by anything but the close.
  """
  def read_to_close(conn, timeout \\ 5_000), do: read_to_close(conn, timeout, [])

  defp read_to_close(conn, timeout, acc) do
    case H2Client.recv(conn, timeout) do
      {:ok, conn, frame} ->
        read_to_close(conn, timeout, [frame | acc])

      {:error, conn, reason} when reason in [:closed, :econnreset] ->
        H2Client.close(conn)
        frames = Enum.reverse(acc)
        after_goaway = Enum.drop_while(frames, &(not match?({:goaway, _, _, _}, &1)))
        assert length(after_goaway) <= 1, "frames after the GOAWAY: #{inspect(after_goaway)}"
        frames

      {:error, _conn, reason} ->
        flunk("no close within #{timeout} ms (#{inspect(reason)}); frames: #{inspect(acc)}")
    end
  end

  @doc "The one GOAWAY among `frames`, which must be the last frame."
  def goaway!(frames) do
    assert [{:goaway, _, _, _} = goaway] = Enum.filter(frames, &match?({:goaway, _, _, _}, &1))
    assert List.last(frames) == goaway
    goaway
  end

  @doc "A connection's frames apart from the server's preface and SETTINGS acknowledgements."
  def without_preface(frames) do
    Enum.reject(frames, fn
      {:settings, _, _} -> true
      {:window_update, 0, _} -> true
      _ -> false
    end)
  end

  # --- the server is fine --------------------------------------------------------------

  @doc "A GET of `path` on `conn` is answered 200 with `body`; returns the connection."
  def assert_get(conn, path \\ "/", body \\ "ok") do
    {:ok, conn, id} = H2Client.request(conn, "GET", path)
    assert {:ok, conn, %{status: 200, body: ^body}} = H2Client.read_response(conn, id)
    conn
  end

  @doc "A new connection is served normally."
  def assert_served(port) do
    conn = port |> connect!() |> assert_get()
    H2Client.close(conn)
  end

  @doc "The handler processes running in the VM."
  def handler_processes do
    for pid <- Process.list(),
        Process.info(pid, :initial_call) == {:initial_call, {H2Flow.Stream, :run, 4}},
        do: pid
  end

  @doc "Counters of `now` minus those of `before`, nested maps included."
  def delta(before, now) do
    Map.new(now, fn
      {key, value} when is_map(value) -> {key, delta(Map.get(before, key, %{}), value)}
      {key, value} when is_integer(value) -> {key, value - Map.get(before, key, 0)}
      other -> other
    end)
  end

  @doc "The defence counters with all zero but `tripped` (a keyword list)."
  def defences(tripped \\ []) do
    zero = %{
      rapid_reset: 0,
      continuation_flood: 0,
      ack_flood: 0,
      settings_flood: 0,
      empty_frames: 0,
      header_list_too_large: 0,
      refused_stream_flood: 0,
      reset_flood: 0
    }

    Enum.into(tripped, zero)
  end

  @doc "Error counters by code, all zero but `counted`."
  def errors(counted \\ []) do
    codes = ~w(no_error protocol_error internal_error flow_control_error settings_timeout
         stream_closed frame_size_error refused_stream cancel compression_error connect_error
         enhance_your_calm inadequate_security http_1_1_required unknown)a

    Enum.into(counted, Map.new(codes, &{&1, 0}))
  end
end
