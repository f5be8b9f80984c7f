defmodule H2Flow.Engine.Options do
  @moduledoc false
  # The engine's options: names, types, documentation and validation. Their defaults are not
  # written here: they are read, when this module is compiled, from the NIF
  # (h2flow_core::Config::default(), the one definition of every default).

  @max_window 2_147_483_647
  @u32 0xFFFF_FFFF

  @defaults H2Flow.Native.engine_defaults()
  @client_defaults H2Flow.Native.engine_client_defaults()

  # {key, type, doc}
  @options [
    {:max_concurrent_streams, {:int, 0, @u32},
     "SETTINGS_MAX_CONCURRENT_STREAMS advertised and enforced: a stream beyond it is refused with REFUSED_STREAM, the others keep being served."},
    {:initial_stream_window, {:int, 0, @max_window},
     "Each stream's receive window (our SETTINGS_INITIAL_WINDOW_SIZE)."},
    {:initial_connection_window, {:int, 65_535, @max_window},
     "The connection receive window: the most request-body bytes buffered that no handler asked for, per connection (the memory bound). Raised from 65,535 by one WINDOW_UPDATE after our SETTINGS."},
    {:window_update_threshold, {:int, 1, 100},
     "Credit is released once it reaches this percentage of the window."},
    {:adaptive_window, :boolean,
     "Double the windows when the peer drains them within one PING round trip while the application keeps up (PINGs: at most one in flight, only after the peer sent half a window since the last one, at most 8 in a row, then 2 a second)."},
    {:max_connection_window, {:int, 65_535, @max_window},
     "Upper bound of adaptive growth of the connection window."},
    {:max_stream_window, {:int, 0, @max_window},
     "Upper bound of adaptive growth of stream windows."},
    {:max_frame_size, {:int, 16_384, 16_777_215},
     "SETTINGS_MAX_FRAME_SIZE advertised: the largest frame accepted."},
    {:header_table_size, {:int, 0, @u32},
     "SETTINGS_HEADER_TABLE_SIZE advertised: the HPACK table the peer may use."},
    {:max_header_list_size, {:int, 1, @u32},
     "SETTINGS_MAX_HEADER_LIST_SIZE, enforced while decoding (HPACK bomb, CVE-2016-6581); a larger request is answered 431."},
    {:max_send_queue, {:int, 1, @u32},
     "Queued, unsent response bytes per stream before the sender must wait."},
    {:max_connection_send_queue, {:int, 1, @u32},
     "Queued, unsent response bytes per connection before every sender must wait: what a peer that opens no window can make the server hold."},
    {:send_stall_timeout, {:int, 1, @u32},
     "Milliseconds a stream may hold queued response bytes without the peer letting any go: then it is reset (CANCEL) and its handler's `stream_body` returns `{:error, :timeout}`; a connection on which nothing could be sent for that long is closed."},
    {:max_continuation_frames, {:int, 0, @u32},
     "CONTINUATION frames allowed in one header block (CVE-2024-27316); beyond: GOAWAY ENHANCE_YOUR_CALM."},
    {:max_header_block_size, {:int, 1, @u32},
     "Compressed bytes allowed in one header block; beyond: GOAWAY ENHANCE_YOUR_CALM."},
    {:max_queued_acks, {:int, 1, @u32},
     "PING and SETTINGS acknowledgements owed between two flushes (CVE-2019-9512, 9515); beyond: GOAWAY ENHANCE_YOUR_CALM."},
    {:max_settings_entries, {:int, 1, @u32},
     "Parameters allowed in one SETTINGS frame; beyond: GOAWAY ENHANCE_YOUR_CALM."},
    {:peer_reset_rate, :rate,
     "`{burst, per_second}` of RST_STREAM frames the peer may send on open streams (Rapid Reset, CVE-2023-44487); beyond: GOAWAY ENHANCE_YOUR_CALM."},
    {:empty_data_rate, :rate,
     "`{burst, per_second}` of empty DATA frames without END_STREAM (CVE-2019-9518)."},
    {:refused_stream_rate, :rate,
     "`{burst, per_second}` of streams refused over the limit after the peer acknowledged it; beyond: GOAWAY ENHANCE_YOUR_CALM that lets accepted streams finish."},
    {:local_reset_rate, :rate,
     "`{burst, per_second}` of RST_STREAM frames and error responses (431) the peer's errors may cause (CVE-2019-9514)."},
    {:settings_timeout, {:int, 1, @u32},
     "Milliseconds our SETTINGS may stay unacknowledged (SETTINGS_TIMEOUT)."},
    {:closed_stream_memory, {:int, 1, @u32},
     "Closed streams remembered to tell late frames from errors (at least 4 × max_concurrent_streams)."}
  ]

  @keys Enum.map(@options, &elem(&1, 0))

  if Enum.sort(@keys) != Enum.sort(Map.keys(@defaults)) do
    raise CompileError,
      description:
        "H2Flow.Engine.Options and the NIF's defaults disagree: " <>
          inspect(List.myers_difference(Enum.sort(@keys), Enum.sort(Map.keys(@defaults))))
  end

  @doc false
  def keys, do: @keys

  @doc false
  def defaults, do: @defaults

  @doc false
  # The client role's defaults (h2flow_core::Config::client()): those that differ.
  def client_defaults, do: Map.filter(@client_defaults, fn {k, v} -> @defaults[k] != v end)

  @doc false
  def docs do
    Enum.map_join(@options, "\n", fn {key, _, doc} ->
      "  * `#{inspect(key)}` (default `#{inspect(Map.fetch!(@defaults, key), pretty: true)}`): #{doc}"
    end)
  end

  @doc false
  # Validates a keyword list of engine options; returns the complete map the NIF expects, with
  # the server's defaults or (`:client`) the client role's.
  def validate!(opts, role \\ :server) when is_list(opts) do
    defaults = if role == :client, do: @client_defaults, else: @defaults

    check_all!(opts, @options, defaults, fn key ->
      "unknown engine option #{inspect(key)}; the engine options are: " <>
        Enum.map_join(@keys, ", ", &inspect/1)
    end)
  end

  @doc false
  # `opts` checked against `options` ({key, type, doc}: {:int, min, max}, :boolean or :rate)
  # and merged into `defaults`; `unknown.(key)` is the message for a key not in `options`.
  # H2Flow.HTTP1.Engine's options are checked by it too.
  def check_all!(opts, options, defaults, unknown) do
    Enum.reduce(opts, defaults, fn
      {key, value}, acc when is_atom(key) ->
        case List.keyfind(options, key, 0) do
          nil -> raise ArgumentError, unknown.(key)
          {^key, type, _} -> Map.put(acc, key, check!(key, type, value))
        end

      other, _acc ->
        raise ArgumentError, "engine options must be a keyword list, got: #{inspect(other)}"
    end)
  end

  defp check!(_key, {:int, min, max}, v) when is_integer(v) and v >= min and v <= max, do: v
  defp check!(_key, :boolean, v) when is_boolean(v), do: v

  defp check!(_key, :rate, {burst, per_second} = v)
       when is_integer(burst) and burst > 0 and is_integer(per_second) and per_second >= 0 and
              burst <= @u32 and per_second <= @u32,
       do: v

  defp check!(key, {:int, min, max}, v),
    do:
      raise(
        ArgumentError,
        "#{inspect(key)} must be an integer in #{min}..#{max}, got: #{inspect(v)}"
      )

  defp check!(key, :boolean, v),
    do: raise(ArgumentError, "#{inspect(key)} must be a boolean, got: #{inspect(v)}")

  defp check!(key, :rate, v),
    do:
      raise(
        ArgumentError,
        "#{inspect(key)} must be {burst, per_second} integers, got: #{inspect(v)}"
      )
end
